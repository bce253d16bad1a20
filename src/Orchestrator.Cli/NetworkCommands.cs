// `network …`: a tenant's networks (issue 19); `vm create --network NET [--ip A]` is in CliSyntax.
using System.CommandLine;
using Orchestrator.Contracts;

namespace Orchestrator.Cli;

public static class NetworkCommands
{
    public static Command Build(ICliActions actions, Func<(Action<Command> AddTo, Func<ParseResult, ClientArgs> Bind)> client)
    {
        var network = new Command("network", "Your tenant's networks: each VM NIC on one gets a fixed address by DHCP; other tenants' VMs never reach it.");
        {
            var (addTo, bind) = client();
            var name = new Argument<string>("NAME") { Description = "The network's name (a DNS label, unique in your tenant)." };
            var cidr = new Option<string>("--cidr") { Description = "Its IPv4 range, /16 to /29, e.g. 10.0.0.0/24 (another tenant may use the same).", Required = true, HelpName = "CIDR" };
            var noGateway = new Option<bool>("--no-gateway") { Description = "Advertise no gateway to its guests (the router, the first address, still serves DHCP)." };
            var create = new Command("create", "Create a network.") { name, cidr, noGateway };
            addTo(create);
            create.SetAction((parse, ct) => actions.CallAsync(new ApiCallArgs(bind(parse), "POST", "v1/networks",
                new CreateNetworkRequest(parse.GetValue(name), parse.GetValue(cidr), parse.GetValue(noGateway) ? false : null), ApiRender.Networks), ct));
            network.Subcommands.Add(create);
        }

        network.Subcommands.Add(ByName(actions, client, "list", "List your networks.", "GET", null));
        network.Subcommands.Add(ByName(actions, client, "show", "Show one network.", "GET", "NAME"));
        network.Subcommands.Add(ByName(actions, client, "delete", "Delete a network no VM has a NIC on.", "DELETE", "NAME"));
        ForwardCliCommands.AddTo(network, actions, client);
        return network;
    }

    /// <summary>The NICs typed on <c>vm create</c>: the i-th <c>--ip</c> belongs to the i-th <c>--network</c>.</summary>
    /// <param name="secgroups">security groups for every NIC.</param>
    public static IReadOnlyList<NicRequest>? Nics(string[]? networks, string[]? ips, string[]? secgroups = null)
    {
        if (secgroups is { Length: > 0 } && networks is not { Length: > 0 })
        {
            throw new CliException("--secgroup: the groups are for the VM's NICs; give a --network");
        }

        if (ips is { Length: > 0 } && ips.Length > (networks?.Length ?? 0))
        {
            throw new CliException($"--ip: {ips.Length} address(es) for {networks?.Length ?? 0} --network(s); each --ip follows the --network it is on");
        }

        return networks is { Length: > 0 }
            ? networks.Select((network, i) => new NicRequest(network, ips is not null && i < ips.Length ? ips[i] : null,
                secgroups is { Length: > 0 } ? secgroups : null)).ToList()
            : null;
    }

    /// <summary>A list, show or delete of one kind of a tenant's named things (networks, security groups) under <paramref name="path"/>.</summary>
    internal static Command ByName(ICliActions actions, Func<(Action<Command> AddTo, Func<ParseResult, ClientArgs> Bind)> client, string verb,
        string description, string method, string? argument, string path = "v1/networks", ApiRender render = ApiRender.Networks,
        string what = "The network's name.")
    {
        var (addTo, bind) = client();
        var command = new Command(verb, description);
        var name = argument is null ? null : new Argument<string>(argument) { Description = what };
        if (name is not null)
        {
            command.Arguments.Add(name);
        }

        addTo(command);
        command.SetAction((parse, ct) => actions.CallAsync(new ApiCallArgs(bind(parse), method,
            name is null ? path : $"{path}/{Uri.EscapeDataString(parse.GetValue(name)!)}", null,
            method == "DELETE" ? ApiRender.Done : render), ct));
        return command;
    }
}
