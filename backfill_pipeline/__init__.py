"""Collects Toastmasters district statistics into per-date snapshot directories."""
