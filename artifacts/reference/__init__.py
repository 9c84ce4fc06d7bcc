"""The shipped reference model (ResNet-20 on CIFAR-10) and its exports, as package data."""
