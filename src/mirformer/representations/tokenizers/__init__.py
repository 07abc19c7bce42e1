"""Audio tokenizers: models that turn audio into ids of one or more codebooks (a VQ-VAE level, a
neural codec's residual quantisers), behind one interface (``base.Tokenizer``)."""
