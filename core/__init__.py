"""Bottom-level helpers every domain app may import: the coded domain error and money formatting."""
