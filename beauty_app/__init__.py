"""BeautyLens: cross-domain beauty product image retrieval (MANet + SR-MAC)."""

__version__ = "0.1.0"
