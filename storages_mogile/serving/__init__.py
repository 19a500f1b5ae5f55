"""Helpers of the MogileFS serving view (``storages_mogile.views.serve``).

``options`` resolves the view's options from settings and URL keyword
arguments; ``files`` finds what a request asks for; ``headers`` derives
content headers and validators; ``ranges`` parses ``Range``; ``proxies``
builds the Perlbal and nginx responses, ``streaming`` the streamed one.
"""
