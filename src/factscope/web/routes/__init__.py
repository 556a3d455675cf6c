"""The web app's routes, one router per capability."""
