"""One activation_stats call on a 64x256x56x56 float32 ReLU tensor, for Nsight Compute to profile
(gpu_check.sh runs it under `ncu --kernel-name stats_kernel --launch-skip 3 --launch-count 1`):
the warm-up calls come first, then the profiled one."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from kerasrecipe import kernels  # noqa: E402

x = torch.relu(torch.randn(64, 256, 56, 56, device="cuda"))
for _ in range(4):
    kernels.activation_stats(x)
torch.cuda.synchronize()
