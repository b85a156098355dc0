from django.urls import path

from examples.django_project.orders import views

urlpatterns = [
    path("orders", views.place_order, name="place_order"),
    path("orders/async", views.place_order_async, name="place_order_async"),
    path("events", views.recent_events, name="recent_events"),
]
