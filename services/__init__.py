"""The four npsloop services and the command line that runs them."""
