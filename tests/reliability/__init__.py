"""Reliability tests of the cache tiers (issue 4): several processes, failed flushes."""
