# Generates the reference EKS tokens in src/token.rs tests. Run with the python of the testkit virtualenv
# (moto 5.2.5 brings botocore 1.44.8):  target/eksodus-venv/bin/python crates/eksodus-cluster/testdata/token_vector.py
# The second vector is the same with a session token "FQoGZXIvYXdzEXAMPLE//+token=", region eu-west-1, cluster prod-eu.
# Reference EKS token: botocore's SigV4 query presigner (what `aws eks get-token` uses), fixed credentials and time.
import base64, datetime
from unittest import mock
import botocore.session
from botocore.signers import RequestSigner
from botocore.model import ServiceId

session = botocore.session.get_session()
session.set_credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
client = session.create_client("sts", region_name="us-east-1", endpoint_url="https://sts.us-east-1.amazonaws.com")
signer = RequestSigner(ServiceId("sts"), "us-east-1", "sts", "v4", session.get_credentials(), session.get_component("event_emitter"))
params = {"method": "GET", "url": "https://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15",
          "body": {}, "headers": {"x-k8s-aws-id": "demo-cluster"}, "context": {}}
fixed = datetime.datetime(2026, 1, 2, 3, 4, 5)
with mock.patch("botocore.auth.get_current_datetime", lambda remove_tzinfo=True: fixed):
    url = signer.generate_presigned_url(params, region_name="us-east-1", expires_in=60, operation_name="")
print(url)
print("k8s-aws-v1." + base64.urlsafe_b64encode(url.encode()).decode().rstrip("="))
