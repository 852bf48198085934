from roughy.adapters.webhooks.dispatcher import WebhookDispatcher
from roughy.adapters.webhooks.sender import WebhookSender

__all__ = ["WebhookDispatcher", "WebhookSender"]
