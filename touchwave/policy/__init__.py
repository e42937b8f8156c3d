"""Contact policy: who may be contacted, through which channel, and when."""
