from django.urls import path
from orders import views

urlpatterns = [
    path("readyz", views.ready),
    path("<str:shape>/api/v1/events", views.create_event),
]
