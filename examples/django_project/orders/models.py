from django.db import models


class Order(models.Model):
    item = models.CharField(max_length=100)
    quantity = models.PositiveIntegerField(default=1)
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"order {self.pk}: {self.quantity} x {self.item}"


class Receipt(models.Model):
    """Written by a sync receiver, from sync and async views alike."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="receipts")
    text = models.CharField(max_length=200)
