using System.Text.Json.Serialization;

namespace Orchestrator.Contracts;

/// <summary>
/// POST /v1/networks/{name}/forwards: host port <see cref="HostPort"/> (of the tenant's granted range) to port
/// <see cref="Port"/> of VM <see cref="Vm"/>'s NIC on that network. <see cref="Protocol"/> is tcp (default) or udp.
/// </summary>
public sealed record CreateForwardRequest(
    int? HostPort,
    string? Vm,
    int? Port,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Protocol = null);

/// <summary>A port forward: on whichever host runs the VM, <see cref="HostPort"/> reaches the VM's <see cref="Port"/>.</summary>
public sealed record ForwardDto(string Id, string Network, string Protocol, int HostPort, string Vm, int Port, string Ip, DateTimeOffset CreatedAt);
