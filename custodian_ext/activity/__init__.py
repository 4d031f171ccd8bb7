"""Activity review: what suspect credentials did, from CloudTrail (issue #14)."""
