"""iomem harness: boots arm64 QEMU guests running the iomem firmware, drives them over the
serial protocol and QMP, and checks what the guest claims against independent sources."""

__all__ = ["__version__"]
__version__ = "0.1.0"
