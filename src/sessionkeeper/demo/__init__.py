"""``sessionkeeper demo``: a Jobs / Contacts / Reports app that shows the whole product at work."""
