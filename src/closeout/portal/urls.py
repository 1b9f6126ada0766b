from django.urls import path

from closeout.portal import views

app_name = "portal"
urlpatterns = [
    path("", views.home, name="home"),
    path("quote/", views.quote, name="quote"),
    path("case/<str:reference>/", views.case, name="case"),
]
