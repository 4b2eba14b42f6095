"""Small utilities with no lab knowledge: where ftcore keeps its files (`paths`), the paths a user types
(`user_paths`), and a thread-safe store of the most recently used values (`lru`)."""
