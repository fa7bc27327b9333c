"""What a receiver of hookpost webhooks uses: verify a signature, parse an event, and
`hookpost listen` (libs.sdk.webhooks); and seed 004's Mappa client (libs.sdk.mappa)."""

from libs.sdk.mappa import Mappa

__version__ = "0.2.0"
__all__ = ["Mappa", "__version__"]
