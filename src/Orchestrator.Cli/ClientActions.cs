// What the client commands do: call the API, wait where asked, print tables or JSON.
using System.Diagnostics;
using System.Globalization;
using System.Net;
using Orchestrator.Contracts;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace Orchestrator.Cli;

internal sealed partial class ClientActions(CliContext context) : ICliActions
{
    private readonly IAnsiConsole _out = CliConsoles.Create(context.Out, context.OutIsTerminal);
    private readonly IAnsiConsole _err = CliConsoles.Create(context.Error, context.ErrorIsTerminal);

    public async Task<int> ListAsync(ListArgs args, CancellationToken ct)
    {
        using var api = Connect(args.Client);
        var path = args.Kind switch
        {
            ListKind.Vms => "v1/vms",
            ListKind.Hosts => "v1/hosts",
            _ => "v1/images",
        };
        var response = await api.GetAsync(path, ct);
        if (args.Client.Output == OutputFormat.Json)
        {
            WriteJson(response);
            return 0;
        }

        Write(args.Kind switch
        {
            ListKind.Vms => Rendering.VmTable(response.Read<List<VmDto>>()),
            ListKind.Hosts => Rendering.HostTable(response.Read<List<HostDto>>()),
            _ => Rendering.ImageTable(response.Read<List<ImageDto>>()),
        });
        if (args.Kind == ListKind.Hosts)
        {
            try
            {
                context.Out.WriteLine(Rendering.CapacityLine((await api.GetAsync("v1/capacity", ct)).Read<CapacityDto>()));
            }
            catch (ApiProblemException)
            {
                // A node without the capacity endpoint: the table alone.
            }
        }

        return 0;
    }

    public async Task<int> HostShowAsync(HostShowArgs args, CancellationToken ct)
    {
        using var api = Connect(args.Client);
        var response = await api.GetAsync("v1/hosts/" + Uri.EscapeDataString(args.Id), ct);
        if (args.Client.Output == OutputFormat.Json)
        {
            WriteJson(response);
            return 0;
        }

        Write(Rendering.HostDetails(response.Read<HostDto>()));
        return 0;
    }

    public async Task<int> VmShowAsync(VmShowArgs args, CancellationToken ct)
    {
        using var api = Connect(args.Client);
        var response = await api.GetAsync(ApiClient.VmPath(args.Name), ct);
        WriteVm(args.Client.Output, response);
        return 0;
    }

    public async Task<int> CallAsync(ApiCallArgs args, CancellationToken ct)
    {
        using var api = Connect(args.Client);
        var body = args.Body;
        if (args.Before is { } change)
        {
            // The API replaces a quota whole: read it, change what was typed, send it back.
            var current = (await api.GetAsync(args.Path, ct)).Read<TenantDto>();
            body = change.Merge(current);
        }

        var response = await api.SendAsync(new HttpMethod(args.Method), args.Path, body, ct);
        if (args.Client.Output == OutputFormat.Json && response.Body.Length > 0)
        {
            WriteJson(response);
            return 0;
        }

        switch (args.Render)
        {
            case ApiRender.Tenants:
                Write(Rendering.TenantTable(response.Read<List<TenantDto>>()));
                break;
            case ApiRender.Tenant:
                Write(Rendering.TenantDetails(response.Read<TenantDto>()));
                break;
            case ApiRender.IssuedKey:
                var issued = response.Read<IssuedKeyDto>();
                context.Out.WriteLine($"key {issued.KeyId} ({issued.Role}) for tenant {issued.Tenant}:");
                context.Out.WriteLine(issued.Key);
                context.Error.WriteLine("this is the only time the key is shown: store it now (the node keeps only its hash)");
                break;
            case ApiRender.Webhooks:
                Write(Rendering.Generic(response.Body, ["id", "url", "events", "createdAt"]));
                break;
            case ApiRender.CreatedWebhook:
                var hook = System.Text.Json.Nodes.JsonNode.Parse(response.Body)!;
                context.Out.WriteLine($"webhook {hook["id"]} → {hook["url"]}; signing secret:");
                context.Out.WriteLine((string?)hook["secret"]);
                context.Error.WriteLine("this is the only time the secret is shown: deliveries carry X-Orchestrator-Signature: sha256=HMAC(secret, body)");
                break;
            case ApiRender.Deliveries:
                Write(Rendering.Generic(response.Body, ["deliveryId", "eventId", "eventType", "status", "attempts", "lastStatusCode", "lastError"]));
                break;
            case ApiRender.Rules:
                Write(Rendering.Generic(response.Body, ["id", "name", "on", "schedule", "action", "selector"]));
                break;
            case ApiRender.Groups:
                Write(Rendering.Generic(response.Body, ["name", "policy", "members", "createdAt"]));
                break;
            case ApiRender.HostLabels:
                Write(Rendering.Generic(response.Body, ["id", "state", "labels"]));
                break;
            case ApiRender.Networks:
                Write(Rendering.Generic(response.Body, ["name", "cidr", "gateway", "router", "vni", "addresses"]));
                break;
            case ApiRender.Images:
                Write(Rendering.Generic(response.Body, ["name", "kind", "format", "bytes", "virtualBytes", "kernel", "public", "sha256"]));
                break;
            case ApiRender.Volumes:
                Write(Rendering.Generic(response.Body, ["name", "sizeGiB", "pool", "host", "attachedTo", "createdAt"]));
                break;
            case ApiRender.Snapshots:
                Write(Rendering.Generic(response.Body, ["vm", "name", "sizeGiB", "pool", "host", "ready", "createdAt"]));
                break;
            case ApiRender.SecurityGroups:
                Write(Rendering.Generic(response.Body, ["name", "rules", "createdAt"]));
                break;
            case ApiRender.Forwards:
                Write(Rendering.Generic(response.Body, ["id", "protocol", "hostPort", "vm", "port", "ip"]));
                break;
            case ApiRender.Done:
                context.Out.WriteLine(response.Body.Length > 0 && args.Method == "PUT" ? "labels set" : "done");
                break;
            default:
                context.Out.WriteLine("revoked");
                break;
        }

        return 0;
    }

    public async Task<int> VmSetAsync(VmSetArgs args, CancellationToken ct)
    {
        if (args.Resources.IsEmpty)
        {
            throw new CliException("nothing to set: give at least one of --shares, --reservation, --limit, --memory-reservation, --memory-limit, --cpuset, --disk-iops, --disk-bps, --disk-shares, --net-bps, --net-shares");
        }

        using var api = Connect(args.Client);
        var changed = await api.PatchAsync(ApiClient.VmPath(args.Name) + "/resources", args.Resources.ToPatch(), ct);
        WriteVm(args.Client.Output, changed);
        return 0;
    }

    public async Task<int> VmCreateAsync(VmCreateArgs args, CancellationToken ct)
    {
        // The files first: a missing or oversized one fails before anything is asked of the node.
        var sshKeys = args.Bootstrap is { SshKeyFiles: { Count: > 0 } keyFiles } ? BootstrapFiles.ReadSshKeys(keyFiles) : null;
        var userData = args.Bootstrap?.UserDataFile is { } userDataFile ? BootstrapFiles.ReadUserData(userDataFile) : null;
        using var api = Connect(args.Client);
        var clock = Stopwatch.StartNew();
        var head = args.Wait ? await EventHeadAsync(api, ct) : null;
        var created = await api.PostAsync(
            "v1/vms",
            new CreateVmRequest(args.Name, args.Vcpus, args.MemoryMiB, args.Image, args.RestartPolicy,
                args.Resources?.CpuShares, args.Resources?.CpuReservationMillicores, args.Resources?.CpuLimitMillicores,
                args.Resources?.MemoryReservationMiB, args.Resources?.MemoryLimitMiB, args.Resources?.Cpuset, args.Labels, args.Driver,
                args.Accelerator, args.Bootstrap?.Hostname, sshKeys, userData, args.DiskGiB, args.HostSelector, args.Group, args.Nics, args.Volumes,
                args.FromSnapshot, args.Resources?.DiskIops, args.Resources?.DiskBps, args.Resources?.DiskShares,
                args.Resources?.NetBps, args.Resources?.NetShares),
            ct);
        if (!args.Wait)
        {
            WriteVm(args.Client.Output, created);
            return 0;
        }

        var outcome = await WaitAsync(api, args.Name, VmStates.Ready, created.Read<VmDto>().State, head, clock, args.Timeout, ct);
        WriteVm(args.Client.Output, outcome.Last!);
        if (outcome.Error is not null)
        {
            throw new CliException(outcome.Error);
        }

        // The node's own timestamps time the boot exactly; the stopwatch (poll-granular) is the fallback.
        var vm = outcome.Last!.Read<VmDto>();
        var seconds = vm.ReadyAt is { } ready && ready >= vm.CreatedAt
            ? (ready - vm.CreatedAt).TotalSeconds
            : clock.Elapsed.TotalSeconds;
        var line = $"{args.Name} ready in {seconds.ToString("0.00", CultureInfo.InvariantCulture)} s";
        (args.Client.Output == OutputFormat.Json ? context.Error : context.Out).WriteLine(line);
        return 0;
    }

    public async Task<int> VmChangeAsync(VmChangeArgs args, CancellationToken ct)
    {
        using var api = Connect(args.Client);
        var clock = Stopwatch.StartNew();
        var path = ApiClient.VmPath(args.Name);
        var head = args.Wait ? await EventHeadAsync(api, ct) : null;
        var accepted = args.Change switch
        {
            VmChange.Stop => await api.PostAsync(path + "/stop", null, ct),
            VmChange.Start => await api.PostAsync(path + "/start", null, ct),
            VmChange.Pause => await api.PostAsync(path + "/pause", null, ct),
            VmChange.Resume => await api.PostAsync(path + "/resume", null, ct),
            _ => await api.DeleteAsync(args.WithVolumes ? path + "?withVolumes=true" : path, ct),
        };

        if (!args.Wait)
        {
            if (args.Change == VmChange.Delete && args.Client.Output == OutputFormat.Table)
            {
                context.Out.WriteLine($"{args.Name}: {accepted.Read<VmDto>().State}");
            }
            else
            {
                WriteVm(args.Client.Output, accepted);
            }

            return 0;
        }

        var wanted = args.Change switch
        {
            VmChange.Stop => VmStates.Stopped,
            VmChange.Start => VmStates.Ready,
            _ => null, // gone: GET answers 404
        };
        var outcome = await WaitAsync(api, args.Name, wanted, accepted.Read<VmDto>().State, head, clock, args.Timeout, ct);

        if (wanted is null && outcome.Error is null)
        {
            if (args.Client.Output == OutputFormat.Json)
            {
                WriteJson(accepted); // the last the server said of it
                context.Error.WriteLine($"{args.Name} deleted");
            }
            else
            {
                context.Out.WriteLine($"{args.Name} deleted");
            }

            return 0;
        }

        if (outcome.Last is not null)
        {
            WriteVm(args.Client.Output, outcome.Last);
        }

        return outcome.Error is null ? 0 : throw new CliException(outcome.Error);
    }

    private sealed record WaitOutcome(ApiResponse? Last, string? Error);

    /// <summary>
    /// Looks at the VM until it is <paramref name="wanted"/> (null: until it is gone), Failed, or the time is up: again
    /// at each of its events after <paramref name="after"/> (the newest event before the command), or every poll
    /// interval where the node has no event stream (<paramref name="after"/> null, or the stream breaks).
    /// The spinner goes to stderr, and only when stderr is a terminal.
    /// </summary>
    private async Task<WaitOutcome> WaitAsync(ApiClient api, string name, string? wanted, string initialState, long? after, Stopwatch clock,
        TimeSpan timeout, CancellationToken ct)
    {
        var goal = wanted ?? "deleted";
        var path = ApiClient.VmPath(name);
        await using var events = after is { } offset ? await VmEventWatch.TryOpenAsync(api, name, offset, ct) : null;

        async Task<WaitOutcome> Poll(Action<string> showState)
        {
            while (true)
            {
                var response = await api.GetOrNullAsync(path, ct);
                if (response is null)
                {
                    return wanted is null
                        ? new WaitOutcome(null, null)
                        : new WaitOutcome(null, $"{name} disappeared while waiting for it to be {wanted} (deleted by someone else?)");
                }

                var vm = response.Read<VmDto>();
                if (vm.State == wanted)
                {
                    return new WaitOutcome(response, null);
                }

                if (vm.State == VmStates.Failed)
                {
                    return new WaitOutcome(response, $"{name} failed: {vm.Reason ?? "no reason given"}");
                }

                if (clock.Elapsed >= timeout)
                {
                    return new WaitOutcome(response, $"timed out after {timeout.TotalSeconds:0} s waiting for {name} to be {goal} (it is {vm.State})");
                }

                showState(vm.State);
                if (events is { Broken: false, Settled: false })
                {
                    await events.NextAsync(timeout - clock.Elapsed, ct);
                }
                else
                {
                    await Task.Delay(context.PollInterval, ct);
                }
            }
        }

        if (!context.ErrorIsTerminal)
        {
            return await Poll(_ => { });
        }

        string Describe(string state) =>
            $"{Markup.Escape(name)}: [{Rendering.StateColor(state)}]{Markup.Escape(state)}[/] (waiting for {Markup.Escape(goal)})";

        return await _err.Status()
            .Spinner(Spinner.Known.Dots)
            .StartAsync(Describe(initialState), ctx => Poll(state => ctx.Status(Describe(state))));
    }

    private ApiClient Connect(ClientArgs client, TimeSpan? timeout = null) =>
        new(NodeConnectionResolver.Resolve(client.Url, client.ApiKey, client.DataDirectory, context.GetEnvironmentVariable), context.HttpHandler,
            timeout);

    private void WriteVm(OutputFormat output, ApiResponse response)
    {
        if (output == OutputFormat.Json)
        {
            WriteJson(response);
        }
        else
        {
            Write(Rendering.VmDetails(response.Read<VmDto>()));
        }
    }

    private void Write(IRenderable renderable)
    {
        if (context.OutIsTerminal)
        {
            _out.Write(renderable);
        }
        else
        {
            context.Out.Write(Rendering.ToPlainText(renderable, width: 240));
        }
    }

    private void WriteJson(ApiResponse response)
    {
        string text;
        try
        {
            text = Rendering.IndentJson(response.Body);
        }
        catch (System.Text.Json.JsonException e)
        {
            throw new CliException($"the node's answer is not JSON: {e.Message}");
        }

        context.Out.WriteLine(text);
    }

    /// <summary>Prints an error the way every command does: <c>error: …</c> on stderr, plus a hint where one helps.</summary>
    public static void WriteError(CliContext context, CliException error)
    {
        if (error is ApiProblemException problem)
        {
            foreach (var line in ProblemFormatter.Lines(problem.Problem, problem.StatusCode))
            {
                context.Error.WriteLine(line);
            }

            if (problem.StatusCode == (int)HttpStatusCode.Unauthorized)
            {
                context.Error.WriteLine("  pass --api-key KEY (or set ORCHESTRATOR_API_KEY)");
            }

            return;
        }

        context.Error.WriteLine("error: " + error.Message);
    }
}
