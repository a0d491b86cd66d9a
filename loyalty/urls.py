from django.urls import path

from loyalty.retention import views

app_name = "loyalty"

urlpatterns = [
    path("programmes/<int:programme_id>/impact/", views.impact_dashboard, name="impact-dashboard"),
]
