"""mirformer: compare music audio representations with masked-pretrained transformer encoders."""

__version__ = "0.1.0"
