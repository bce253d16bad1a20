using Akka.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Orchestrator.Actors.Hosting;
using Orchestrator.Actors.Scheduler;
using Orchestrator.Contracts;
using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Networks;
using Orchestrator.Domain.Vms;
using static Orchestrator.Api.OrchestratorApi;

namespace Orchestrator.Api;

/// <summary>
/// A tenant's security groups: create, list, show, delete; add and remove their rules; and set the groups of a VM's NIC
/// (running or not: its host rewrites the NIC's rules).
/// </summary>
public static class SecurityGroupEndpoints
{
    public static RouteGroupBuilder MapSecurityGroups(this RouteGroupBuilder v1, IdempotencyCache idempotency)
    {
        v1.MapPost("/secgroups", async (HttpRequest request, IRequiredActor<SchedulerProxy> scheduler, CancellationToken ct) =>
        {
            var (body, error) = await ReadBodyAsync<CreateSecurityGroupRequest>(request, ct, b => Required(("name", b.Name)));
            if (error is not null)
            {
                return error;
            }

            var tenant = Acting(request.HttpContext);
            var reply = await AskAsync<object>(scheduler, new SecurityGroupCommands.CreateSecurityGroup(NewId("sg"), tenant, body!.Name!), ct);
            return await GroupOrRefusalAsync(scheduler, tenant, body.Name!, reply, StatusCodes.Status201Created, ct);
        }).RequireWrite().Idempotent(idempotency).Accepts<CreateSecurityGroupRequest>("application/json").Produces<SecurityGroupDto>(StatusCodes.Status201Created);

        v1.MapGet("/secgroups", async (HttpContext http, IRequiredActor<SchedulerProxy> scheduler, CancellationToken ct) =>
        {
            var list = await AskAsync<SecurityGroupReplies.SecurityGroupList>(scheduler, new SecurityGroupQueries.ListSecurityGroups(Acting(http)), ct);
            return Results.Json(list.Groups.Select(ToDto).ToList(), Json);
        });

        v1.MapGet("/secgroups/{name}", async (string name, HttpContext http, IRequiredActor<SchedulerProxy> scheduler, CancellationToken ct) =>
            await GroupOrRefusalAsync(scheduler, Acting(http), name, SchedulerReplies.Done.Instance, StatusCodes.Status200OK, ct));

        v1.MapDelete("/secgroups/{name}", async (string name, HttpContext http, IRequiredActor<SchedulerProxy> scheduler, CancellationToken ct) =>
            NoContentOrRefusal(await AskAsync<object>(scheduler, new SecurityGroupCommands.DeleteSecurityGroup(Acting(http), name), ct)))
            .RequireWrite();

        v1.MapPost("/secgroups/{name}/rules", async (string name, HttpRequest request, IRequiredActor<SchedulerProxy> scheduler, CancellationToken ct) =>
        {
            var (body, error) = await ReadBodyAsync<SecurityRuleRequest>(request, ct);
            if (error is not null)
            {
                return error;
            }

            var (rule, errors) = SecurityRule.Create(NewId("r", bytes: 4), body!.Protocol, body.PortFrom, body.PortTo, body.RemoteCidr, body.RemoteGroup);
            if (errors.Count > 0)
            {
                return Invalid(errors);
            }

            var tenant = Acting(request.HttpContext);
            var reply = await AskAsync<object>(scheduler, new SecurityGroupCommands.AddSecurityRule(tenant, name, rule!), ct);
            return await GroupOrRefusalAsync(scheduler, tenant, name, reply, StatusCodes.Status201Created, ct);
        }).RequireWrite().Accepts<SecurityRuleRequest>("application/json").Produces<SecurityGroupDto>(StatusCodes.Status201Created);

        v1.MapDelete("/secgroups/{name}/rules/{rule}", async (string name, string rule, HttpContext http, IRequiredActor<SchedulerProxy> scheduler,
            CancellationToken ct) =>
            NoContentOrRefusal(await AskAsync<object>(scheduler, new SecurityGroupCommands.RemoveSecurityRule(Acting(http), name, rule), ct)))
            .RequireWrite();

        v1.MapPut("/vms/{name}/nics/{index}/secgroups", async (string name, string index, HttpRequest request, IRequiredActor<SchedulerProxy> scheduler,
            CancellationToken ct) =>
        {
            var (body, error) = await ReadBodyAsync<NicSecurityGroupsRequest>(request, ct);
            if (error is not null)
            {
                return error;
            }

            if (!int.TryParse(index, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var nic))
            {
                return Invalid([new FieldError("nic", $"'{FieldError.Echo(index)}' is not a NIC index (0, 1, …)")]);
            }

            var reply = await AskAsync<object>(scheduler,
                new SecurityGroupCommands.SetNicSecurityGroups(Acting(request.HttpContext), name, nic, body!.Groups ?? []), ct);
            return NoContentOrRefusal(reply);
        }).RequireWrite().Accepts<NicSecurityGroupsRequest>("application/json");

        return v1;
    }

    /// <summary>The group as it is now, unless <paramref name="reply"/> refused; another tenant's group is not found.</summary>
    private static async Task<IResult> GroupOrRefusalAsync(IRequiredActor<SchedulerProxy> scheduler, TenantId tenant, string name, object reply,
        int status, CancellationToken ct)
    {
        if (reply is SchedulerReplies.Refused refused)
        {
            return FromRefusal(refused.Refusal);
        }

        var list = await AskAsync<SecurityGroupReplies.SecurityGroupList>(scheduler, new SecurityGroupQueries.ListSecurityGroups(tenant), ct);
        return list.Groups.FirstOrDefault(g => g.Name == name) is { } group
            ? Results.Json(ToDto(group), Json, statusCode: status)
            : FromRefusal(Refusal.NotFound($"no security group '{FieldError.Echo(name)}'"));
    }

    private static SecurityGroupDto ToDto(SecurityGroupRecord g) => new(g.Id, g.Name, g.Tenant.Value,
        g.Rules.Select(r => new SecurityRuleDto(r.Id, r.Protocol, r.PortFrom, r.PortTo, r.RemoteCidr, r.RemoteGroup, r.ToString())).ToList(), g.CreatedAt);
}
