"""Models: timm model creation and preparation; the CIFAR nets registered in timm's registry."""
