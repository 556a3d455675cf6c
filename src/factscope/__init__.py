"""factscope: find, read and rewrite the facts a language model stores."""

__version__ = "0.1.0"
