"""Readers (one per format, all returning the canonical dataset) and atomic writers."""
