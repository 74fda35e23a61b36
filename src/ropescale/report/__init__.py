"""Tables and plots from evaluation result JSON files."""
