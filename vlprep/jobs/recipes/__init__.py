"""Named recipes: the published settings of each method, pinned in one place."""
