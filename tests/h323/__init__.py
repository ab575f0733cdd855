"""Tests of the H.323 wire layer (a package, so that its helper imports as .vectors)."""
