"""Distributed search on keras-tuner's chief/worker mode (tip A7), across the search's stages.

keras-tuner's mode: every process runs the same script; the environment says who is who —
`KERASTUNER_TUNER_ID` ("chief" on the chief, any other unique name on a worker),
`KERASTUNER_ORACLE_IP` and `KERASTUNER_ORACLE_PORT` (where the chief listens). Workers ask the
chief's oracle for trials over gRPC, train them and report the score.

keras-tuner's own server (`oracle_chief.start_server`) serves one oracle, never closes its port
and polls every 20 s; a coarse-to-fine search has one oracle per stage. This chief serves every
stage on ONE port: a worker's tuner id carries its stage (`<worker>@<stage>`); a worker asking
for a later stage waits (IDLE) until the chief has finished the current one and derived the next
stage's space from its best trial; a worker asking for a finished stage is told to stop. The
chief also records which worker ran each trial (`assignments.json` in the stage directory).
"""
from __future__ import annotations

import os
import threading
import time
from concurrent import futures
from typing import Callable, List, Optional

from kerasrecipe.io import atomic_write_json

SEP = "@"


def role() -> str:
    """"chief", "worker" or "single" from keras-tuner's environment variables."""
    from keras_tuner.src.distribute import utils as dist_utils

    if not dist_utils.has_chief_oracle():
        return "single"
    return "chief" if dist_utils.is_chief_oracle() else "worker"


def worker_id() -> str:
    return os.environ.get("KERASTUNER_TUNER_ID", "tuner0")


def stage_tuner_id(stage: str) -> str:
    return f"{worker_id()}{SEP}{stage}"


def _make_servicer_class():
    from keras_tuner.src import protos
    from keras_tuner.src.distribute.oracle_chief import OracleServicer
    from keras_tuner.src.engine import hyperparameters as hp_module
    from keras_tuner.src.engine import trial as trial_module

    class StagedOracleServicer(OracleServicer):
        """Routes requests to the oracle of the current stage (see the module docstring)."""

        def __init__(self, stages: List[str], idle_wait: float = 0.3):
            super().__init__(oracle=None)
            self.stages = list(stages)
            self.index = -1
            self.assignments = {}
            self.assignments_path = None
            self.on_trial_end = None
            self.idle_wait = idle_wait
            self._lock = threading.Lock()

        def set_stage(self, stage, oracle, assignments_path=None, on_trial_end=None):
            with self._lock:
                self.index = self.stages.index(stage)
                self.oracle = oracle
                self.stop_triggered = False
                self.assignments = {}
                if assignments_path and os.path.exists(assignments_path):
                    import json

                    with open(assignments_path) as f:
                        self.assignments = json.load(f)
                self.assignments_path = assignments_path
                self.on_trial_end = on_trial_end

        def _empty(self, status):
            trial = trial_module.Trial(hp_module.HyperParameters(), trial_id="", status=status)
            return protos.get_service().CreateTrialResponse(trial=trial.to_proto())

        def CreateTrial(self, request, context):
            tuner_id = request.tuner_id
            stage = tuner_id.rpartition(SEP)[2] if SEP in tuner_id else None
            with self._lock:
                index, oracle = self.index, self.oracle
            wanted = self.stages.index(stage) if stage in self.stages else (index if stage is None else -2)
            if wanted == -2 or (0 <= wanted < index):
                # unknown stage, or a stage already finished: nothing more to do there
                return self._empty(trial_module.TrialStatus.STOPPED)
            if wanted > index or oracle is None:
                time.sleep(self.idle_wait)  # the chief is still finishing an earlier stage
                return self._empty(trial_module.TrialStatus.IDLE)
            trial = oracle.create_trial(tuner_id)
            if trial.status == trial_module.TrialStatus.STOPPED:
                self.stop_triggered = True
            elif trial.status == trial_module.TrialStatus.RUNNING:
                with self._lock:
                    self.assignments[trial.trial_id] = tuner_id.rpartition(SEP)[0] or tuner_id
                    if self.assignments_path:
                        atomic_write_json(self.assignments_path, self.assignments)
            return protos.get_service().CreateTrialResponse(trial=trial.to_proto())

        def EndTrial(self, request, context):
            response = super().EndTrial(request, context)
            if self.on_trial_end is not None:
                try:
                    self.on_trial_end(self.oracle.get_trial(request.trial.trial_id))
                except Exception:  # progress display must never break the server
                    pass
            return response

    return StagedOracleServicer


class ChiefServer:
    """The chief's gRPC server for a staged search. Use as a context manager:

        with ChiefServer(["lr", "rest"]) as server:
            server.serve("lr", tuner_lr.oracle)   # blocks until every trial of the stage ended
            server.serve("rest", tuner_rest.oracle)
    """

    def __init__(self, stages: List[str], ip: Optional[str] = None, port: Optional[int] = None,
                 poll: float = 0.2, max_workers: int = 8):
        import grpc
        from keras_tuner.src import protos

        self.ip = ip or os.environ["KERASTUNER_ORACLE_IP"]
        self.port = int(port or os.environ["KERASTUNER_ORACLE_PORT"])
        self.poll = poll
        self.servicer = _make_servicer_class()(stages)
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers))
        protos.get_service_grpc().add_OracleServicer_to_server(self.servicer, self.server)
        bound = self.server.add_insecure_port(f"{self.ip}:{self.port}")
        if not bound:
            raise OSError(f"the tuning chief could not listen on {self.ip}:{self.port} (port in use?)")

    def __enter__(self):
        self.server.start()
        return self

    def __exit__(self, *exc):
        self.server.stop(grace=2)
        return False

    def serve(self, stage: str, oracle, *, assignments_path: Optional[str] = None,
              on_trial_end: Optional[Callable] = None) -> dict:
        """Serve one stage's oracle until all its trials ended and every worker that asked was
        told to stop; returns {trial_id: worker id}."""
        from keras_tuner.src.distribute.oracle_chief import exit_chief

        self.servicer.set_stage(stage, oracle, assignments_path, on_trial_end)
        while True:
            time.sleep(self.poll)
            if self.servicer.stop_triggered and exit_chief(oracle):
                break
        return dict(self.servicer.assignments)
