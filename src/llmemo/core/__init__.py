"""The cache itself: requests, entries, policy and the Cache facade."""
