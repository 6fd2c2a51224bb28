//! AWS operation names from HTTP requests, as signed by the SDK: the testkit's proxy counts and faults calls by
//! them, and the operator reports its AWS calls by them. Pure: strings in, a name out.

/// The signing name of a SigV4 `Authorization` header (`Credential=AKID/DATE/REGION/SERVICE/aws4_request`).
pub fn service_of(authorization: &str) -> Option<&str> {
    authorization.split("Credential=").nth(1)?.split('/').nth(3)
}

/// The access key ID of a SigV4 `Authorization` header.
pub fn access_key_of(authorization: &str) -> Option<&str> {
    authorization.split("Credential=").nth(1)?.split('/').next().filter(|k| !k.is_empty())
}

/// The region of a SigV4 `Authorization` header.
pub fn region_of(authorization: &str) -> Option<&str> {
    authorization.split("Credential=").nth(1)?.split('/').nth(2)
}

/// The operation of a request to `service`: the `X-Amz-Target` header (JSON protocols), the `Action` of a query
/// body (EC2, IAM, STS), or the EKS REST route; `METHOD path` when none applies.
pub fn operation_of(service: &str, method: &str, path: &str, target: Option<&str>, body: &[u8]) -> String {
    if let Some(t) = target {
        return t.rsplit('.').next().unwrap_or(t).to_string();
    }
    if let Some(action) =
        std::str::from_utf8(body).ok().and_then(|b| b.split('&').find_map(|kv| kv.strip_prefix("Action=")))
    {
        return action.to_string();
    }
    if service == "eks" {
        if let Some(op) = eks_operation(method, path) {
            return op.to_string();
        }
    }
    format!("{method} {path}")
}

/// EKS REST routes (from the EKS API model) to operation names.
pub fn eks_operation(method: &str, path: &str) -> Option<&'static str> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    Some(match (method, segs.as_slice()) {
        ("POST", ["clusters"]) => "CreateCluster",
        ("GET", ["clusters"]) => "ListClusters",
        ("GET", ["clusters", _]) => "DescribeCluster",
        ("DELETE", ["clusters", _]) => "DeleteCluster",
        ("POST", ["clusters", _, "update-config"]) => "UpdateClusterConfig",
        ("POST", ["clusters", _, "updates"]) => "UpdateClusterVersion",
        ("GET", ["clusters", _, "updates"]) => "ListUpdates",
        ("GET", ["clusters", _, "updates", _]) => "DescribeUpdate",
        ("POST", ["clusters", _, "node-groups"]) => "CreateNodegroup",
        ("GET", ["clusters", _, "node-groups"]) => "ListNodegroups",
        ("GET", ["clusters", _, "node-groups", _]) => "DescribeNodegroup",
        ("DELETE", ["clusters", _, "node-groups", _]) => "DeleteNodegroup",
        ("POST", ["clusters", _, "node-groups", _, "update-version"]) => "UpdateNodegroupVersion",
        ("POST", ["clusters", _, "node-groups", _, "update-config"]) => "UpdateNodegroupConfig",
        ("POST", ["clusters", _, "addons"]) => "CreateAddon",
        ("GET", ["clusters", _, "addons"]) => "ListAddons",
        ("GET", ["clusters", _, "addons", _]) => "DescribeAddon",
        ("DELETE", ["clusters", _, "addons", _]) => "DeleteAddon",
        ("POST", ["clusters", _, "addons", _, "update"]) => "UpdateAddon",
        ("GET", ["addons", "supported-versions"]) => "DescribeAddonVersions",
        ("POST", ["clusters", _, "access-entries"]) => "CreateAccessEntry",
        ("GET", ["clusters", _, "access-entries"]) => "ListAccessEntries",
        ("GET", ["clusters", _, "access-entries", _]) => "DescribeAccessEntry",
        ("POST", ["clusters", _, "access-entries", _]) => "UpdateAccessEntry",
        ("DELETE", ["clusters", _, "access-entries", _]) => "DeleteAccessEntry",
        ("POST", ["clusters", _, "access-entries", _, "access-policies"]) => "AssociateAccessPolicy",
        ("GET", ["clusters", _, "access-entries", _, "access-policies"]) => "ListAssociatedAccessPolicies",
        ("DELETE", ["clusters", _, "access-entries", _, "access-policies", _]) => "DisassociateAccessPolicy",
        ("GET", ["access-policies"]) => "ListAccessPolicies",
        ("POST", ["clusters", _, "fargate-profiles"]) => "CreateFargateProfile",
        ("GET", ["clusters", _, "fargate-profiles"]) => "ListFargateProfiles",
        ("GET", ["clusters", _, "fargate-profiles", _]) => "DescribeFargateProfile",
        ("DELETE", ["clusters", _, "fargate-profiles", _]) => "DeleteFargateProfile",
        ("POST", ["clusters", _, "capabilities"]) => "CreateCapability",
        ("GET", ["clusters", _, "capabilities"]) => "ListCapabilities",
        ("GET", ["clusters", _, "capabilities", _]) => "DescribeCapability",
        ("POST", ["clusters", _, "capabilities", _]) => "UpdateCapability",
        ("DELETE", ["clusters", _, "capabilities", _]) => "DeleteCapability",
        ("POST", ["clusters", _, "pod-identity-associations"]) => "CreatePodIdentityAssociation",
        ("GET", ["clusters", _, "pod-identity-associations"]) => "ListPodIdentityAssociations",
        ("GET", ["clusters", _, "pod-identity-associations", _]) => "DescribePodIdentityAssociation",
        ("POST", ["clusters", _, "pod-identity-associations", _]) => "UpdatePodIdentityAssociation",
        ("DELETE", ["clusters", _, "pod-identity-associations", _]) => "DeletePodIdentityAssociation",
        ("POST", ["clusters", _, "identity-provider-configs", "associate"]) => "AssociateIdentityProviderConfig",
        ("POST", ["clusters", _, "identity-provider-configs", "describe"]) => "DescribeIdentityProviderConfig",
        ("POST", ["clusters", _, "identity-provider-configs", "disassociate"]) => "DisassociateIdentityProviderConfig",
        ("GET", ["clusters", _, "identity-provider-configs"]) => "ListIdentityProviderConfigs",
        ("POST", ["tags", ..]) => "TagResource",
        ("GET", ["tags", ..]) => "ListTagsForResource",
        ("DELETE", ["tags", ..]) => "UntagResource",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_named_as_in_the_api_models() {
        assert_eq!(eks_operation("POST", "/clusters"), Some("CreateCluster"));
        assert_eq!(eks_operation("GET", "/clusters/demo/addons/vpc-cni"), Some("DescribeAddon"));
        assert_eq!(
            eks_operation("DELETE", "/clusters/demo/access-entries/arn%3Aaws/access-policies/p"),
            Some("DisassociateAccessPolicy")
        );
        assert_eq!(eks_operation("GET", "/nope"), None);
        assert_eq!(operation_of("ec2", "POST", "/", None, b"Action=DescribeVpcs&Version=2016-11-15"), "DescribeVpcs");
        assert_eq!(operation_of("kms", "POST", "/", Some("TrentService.CreateKey"), b"{}"), "CreateKey");
        assert_eq!(operation_of("eks", "GET", "/clusters/x", None, b""), "DescribeCluster");
        let auth = "AWS4-HMAC-SHA256 Credential=AKID/20260101/eu-west-1/ec2/aws4_request, SignedHeaders=host";
        assert_eq!((service_of(auth), region_of(auth)), (Some("ec2"), Some("eu-west-1")));
        assert_eq!(access_key_of(auth), Some("AKID"));
    }
}
