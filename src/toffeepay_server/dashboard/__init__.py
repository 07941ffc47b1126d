"""The studio dashboard at `<public URL>/dashboard`: server-rendered pages over the services."""
