// `network forward|forwards|unforward`: port forwards from a host port of the tenant's granted range to a VM's port (issue 19).
using System.CommandLine;
using System.Globalization;
using Orchestrator.Contracts;

namespace Orchestrator.Cli;

public static class ForwardCliCommands
{
    /// <summary>Adds the forward commands to <paramref name="network"/>.</summary>
    public static void AddTo(Command network, ICliActions actions, Func<(Action<Command> AddTo, Func<ParseResult, ClientArgs> Bind)> client)
    {
        {
            var (addTo, bind) = client();
            var name = new Argument<string>("NET") { Description = "Your network the VM has a NIC on." };
            var hostPort = new Option<int>("--host-port") { Description = "The host port, from your tenant's granted range (tenant show: forwardPorts).", Required = true, HelpName = "PORT" };
            var to = new Option<string>("--to") { Description = "The VM and its port, VM:PORT.", Required = true, HelpName = "VM:PORT" };
            var protocol = new Option<string>("--protocol") { Description = "tcp (default) or udp.", HelpName = "PROTOCOL", DefaultValueFactory = _ => "tcp" }
                .AcceptOnlyFromAmong("tcp", "udp");
            var forward = new Command("forward", "Forward a host port to a VM's port, on whichever host runs the VM (its security groups still decide).")
            {
                name, hostPort, to, protocol,
            };
            addTo(forward);
            forward.SetAction((parse, ct) =>
            {
                var (vm, port) = Target(parse.GetValue(to)!);
                return actions.CallAsync(new ApiCallArgs(bind(parse), "POST", $"v1/networks/{Uri.EscapeDataString(parse.GetValue(name)!)}/forwards",
                    new CreateForwardRequest(parse.GetValue(hostPort), vm, port, parse.GetValue(protocol)), ApiRender.Forwards), ct);
            });
            network.Subcommands.Add(forward);
        }

        {
            var (addTo, bind) = client();
            var name = new Argument<string>("NET") { Description = "The network." };
            var list = new Command("forwards", "List a network's port forwards.") { name };
            addTo(list);
            list.SetAction((parse, ct) => actions.CallAsync(new ApiCallArgs(bind(parse), "GET",
                $"v1/networks/{Uri.EscapeDataString(parse.GetValue(name)!)}/forwards", null, ApiRender.Forwards), ct));
            network.Subcommands.Add(list);
        }

        {
            var (addTo, bind) = client();
            var name = new Argument<string>("NET") { Description = "The network." };
            var id = new Argument<string>("ID") { Description = "The forward's id (network forwards NET)." };
            var remove = new Command("unforward", "Remove a port forward: the host port closes at once.") { name, id };
            addTo(remove);
            remove.SetAction((parse, ct) => actions.CallAsync(new ApiCallArgs(bind(parse), "DELETE",
                $"v1/networks/{Uri.EscapeDataString(parse.GetValue(name)!)}/forwards/{Uri.EscapeDataString(parse.GetValue(id)!)}", null, ApiRender.Done), ct));
            network.Subcommands.Add(remove);
        }
    }

    /// <summary>"web:80" → (web, 80).</summary>
    public static (string Vm, int Port) Target(string text)
    {
        var colon = text.LastIndexOf(':');
        return colon > 0 && int.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var port)
            ? (text[..colon], port)
            : throw new CliException($"--to: '{text}' is not VM:PORT (e.g. web:80)");
    }
}
