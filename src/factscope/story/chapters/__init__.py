"""The chapters of the story, one module each, in the order the page tells them."""
