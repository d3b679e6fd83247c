"""One small module per framework behind the :class:`~modelport.bundle.flavors.base.Flavor` protocol."""
