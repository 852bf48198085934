from roughy.adapters.webhooks.sender import WebhookSender

__all__ = ["WebhookSender"]
