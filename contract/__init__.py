"""The external contract that the product, the bridge and the handlers share."""
