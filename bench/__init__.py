"""hardbench: a benchmark suite for hard-sample identification methods."""
from .registry import get_method, list_methods, register, select_methods

__all__ = ["register", "list_methods", "get_method", "select_methods"]
__version__ = "0.1.0"
