"""Differentiable ops, grouped by kind. Each op is a Function (see dtrain.autograd.function)."""
