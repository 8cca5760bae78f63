"""Side-by-side benchmarks of dtrain against PyTorch (and, later, torch.distributed gloo)."""
