"""lesions stage."""
