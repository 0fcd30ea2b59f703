"""Vocabulary every stage shares: messages, severities, sensor kinds, topics and the payload codec.

``domain`` imports nothing else of yujing's.
"""
