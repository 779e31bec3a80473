"""A sequence task on generated data: padding chosen from the length percentiles, a GRU, and
gradient clipping by global norm.

    python examples/sequence_clipping.py            # ~1 minute on 2 CPU cores
    python examples/sequence_clipping.py --smoke

The task: each sequence holds tokens 1..19 (0 is padding); the label says whether "low" tokens
(1..9) outnumber "high" ones (10..19). Lengths vary a lot (a long tail), as in real text.

Tips shown: B6 (pad to the length covering ~90% of the sequences, found from the percentiles
and checked by preflight's padding check), E1/E2 (tanh GRU with orthogonal recurrent weights,
Keras's defaults), D8 (clipping by global norm, 1.0, essential for RNNs; the pre-clip norm of
each step is recorded and drawn in the report).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import parse_args  # noqa: E402

VOCAB = 20


def make_sequences(n, seed=0):
    """n sequences with lognormal lengths (3..200) and their labels."""
    import numpy as np

    rng = np.random.default_rng(seed)
    lengths = np.clip(rng.lognormal(mean=3.0, sigma=0.6, size=n).astype(int), 3, 200)
    seqs, labels = [], []
    for L in lengths:
        s = rng.integers(1, VOCAB, size=L)
        seqs.append(s)
        labels.append(int(np.sum(s < 10) > np.sum(s >= 10)))
    return seqs, np.asarray(labels, dtype="int32"), lengths


def main(argv=None):
    args = parse_args(__doc__.splitlines()[0], argv)
    import keras
    import numpy as np

    import kerasrecipe as kr

    kr.seed_everything(0)
    n = 400 if args.smoke else 3000
    seqs, y, lengths = make_sequences(n)
    pct = {q: int(np.percentile(lengths, q)) for q in (50, 90, 99)}
    maxlen = pct[90]                                                            # B6
    print(f"sequence lengths: p50 {pct[50]}, p90 {pct[90]}, p99 {pct[99]}, max {lengths.max()} "
          f"-> padding to {maxlen} (covers 90%)")
    x = keras.utils.pad_sequences(seqs, maxlen=maxlen, padding="post", truncating="post", value=0)
    n_val = n // 5
    x_train, y_train, x_val, y_val = x[n_val:], y[n_val:], x[:n_val], y[:n_val]

    model = keras.Sequential([
        keras.Input((maxlen,), dtype="int32"),
        keras.layers.Embedding(VOCAB, 16, mask_zero=True),
        keras.layers.GRU(32),                                                   # tanh, orthogonal (E1, E2)
        keras.layers.Dense(1, activation="sigmoid"),
    ], name="gru_classifier")
    optimizer = kr.optimizers.clip_global_norm(keras.optimizers.Adam(3e-3), max_norm=1.0)   # D8
    model.compile(optimizer, "binary_crossentropy", metrics=["accuracy"])

    report = kr.preflight(model, x_train, y_train, validation_data=(x_val, y_val),
                          checks=["padding", "targets", "initial_loss"], verbose=0)
    print("preflight padding check:", report["padding"].summary)

    run_dir = os.path.join(args.out, "sequence_clipping")
    epochs = 1 if args.smoke else 12
    callbacks = kr.default(epochs=epochs, run_dir=run_dir, clipnorm=1.0, tensorboard=False)
    model.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=epochs, batch_size=64,
              callbacks=callbacks, verbose=2)
    norms = [r["global_norm"] for r in kr.recipe.find_runlog(callbacks).of("grad") if r.get("source") == "optimizer"]
    clipped = float(np.mean([g > 1.0 for g in norms])) if norms else float("nan")
    accuracy = float(model.evaluate(x_val, y_val, verbose=0, return_dict=True)["accuracy"])
    print(f"validation accuracy {accuracy:.3f}; {len(norms)} steps, {clipped:.0%} of them clipped at norm 1.0")
    kr.report.build_report(run_dir)
    return {"accuracy": accuracy, "maxlen": maxlen, "grad_norms": norms, "padding": report["padding"].to_dict(),
            "run_dir": run_dir}


if __name__ == "__main__":
    main()
