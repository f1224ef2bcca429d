"""LapMask model: backbones + FPN, instance head, Laplacian mask branch, targets, loss, post-processing."""
