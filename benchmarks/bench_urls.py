from django.urls import path
from ninja import NinjaAPI

from closeout.urls import urlpatterns as closeout_urls

hello_api = NinjaAPI(title="bench", version="bench", urls_namespace="bench", docs_url=None, openapi_url=None)


@hello_api.get("/hello")
def hello(request):
    return {"hello": "world"}


@hello_api.post("/hello")
def hello_post(request):
    return {"hello": "world"}


urlpatterns = [path("bench/", hello_api.urls), *closeout_urls]
