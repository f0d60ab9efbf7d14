"""The measurements behind `mpnn-benchmark` (mpnn/cli/benchmark.py) and docs/PERFORMANCE.md.

- `throughput`: this project's training pipeline against PyG's QM9 example, the step alone,
  its floating-point operations and the machine's matrix-multiply peak;
- `data_path`: on-device PyG batches against `torch_geometric.loader.DataLoader`, alone and
  inside training steps; `zoo`: the same for SchNet, DimeNet++ and ViSNet;
- `accuracy`: validation MAE of the speed-ups against the plain path, seeds x a fixed epoch budget;
- `time_to_accuracy`: validation MAE against training seconds, this project against the example.
"""
