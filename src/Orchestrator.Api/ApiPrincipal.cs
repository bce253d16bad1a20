using Microsoft.AspNetCore.Http;
using Orchestrator.Domain;

namespace Orchestrator.Api;

/// <summary>What a key may do. Admin keys belong to the system tenant and may act for any tenant.</summary>
public enum ApiRole
{
    Admin,
    Member,
    ReadOnly,
}

/// <summary>
/// Who is calling: the tenant the key belongs to, its role, and the key's public id (never the secret). Set by the
/// authentication filter on every /v1 request; endpoints read it with <see cref="ApiPrincipals.Principal"/>.
/// </summary>
public sealed record ApiPrincipal(TenantId Tenant, ApiRole Role, string KeyId)
{
    public bool IsAdmin => Role == ApiRole.Admin;

    /// <summary>Members and admins change things; read-only keys only look.</summary>
    public bool CanWrite => Role != ApiRole.ReadOnly;

    /// <summary>
    /// The tenant a request acts on: the caller's own, or for an admin the one named by <c>?tenant=</c> (default
    /// system). Null when an admin named a tenant id that is not valid.
    /// </summary>
    public TenantId? ActingTenant(HttpRequest request)
    {
        if (!IsAdmin || request.Query["tenant"].ToString() is not { Length: > 0 } named)
        {
            return Tenant;
        }

        return Domain.Vms.VmSpecValidator.IsValidName(named) ? new TenantId(named) : null;
    }
}

public static class ApiPrincipals
{
    private const string Key = "orchestrator.principal";

    /// <summary>The caller of this request (the authentication filter has run on every /v1 endpoint).</summary>
    public static ApiPrincipal Principal(this HttpContext context) =>
        context.Items[Key] as ApiPrincipal ?? throw new InvalidOperationException("no principal: the endpoint is outside the authenticated group");

    internal static void SetPrincipal(this HttpContext context, ApiPrincipal principal) => context.Items[Key] = principal;
}
