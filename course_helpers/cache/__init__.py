"""The cache model: which steps a build will take from the cache and why (predict, explain, the quiz)."""
