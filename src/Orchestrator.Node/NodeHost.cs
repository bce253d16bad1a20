using Akka.Actor;
using Akka.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orchestrator.Actors.Hosting;
using Orchestrator.Actors.Scheduler;
using Orchestrator.Actors.Settings;
using Orchestrator.Api;
using Orchestrator.Cli;
using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Node;

/// <summary><c>orchestrator node</c>: one cluster member with its API, in the foreground until Ctrl-C.</summary>
public static class NodeHost
{
    public static async Task<int> RunAsync(NodeCommandOptions options, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(options.DataDirectory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        using var dataLock = DataDirectoryLock.TryAcquire(options.DataDirectory, out var holder);
        if (dataLock is null)
        {
            // Two nodes on one data dir would fight over the journal and adopt each other's VMs.
            await Console.Error.WriteLineAsync(
                $"error: another node{(holder is null ? "" : $" (pid {holder})")} is using {options.DataDirectory}; stop it or pass another --data");
            return 1;
        }

        Akka.Configuration.Config config;
        OrchestratorSettings settings;
        try
        {
            config = OrchestratorConfig.Load(options.ConfigFiles, FlagsAsHocon(options));
            settings = OrchestratorSettings.Create(config, options.DataDirectory, ImageDirectory()).WithSecrets();
            config = OrchestratorConfig.Complete(config, options.DataDirectory, settings.Roles);
            if (settings.IsHost && settings.Host.Driver == "kvm" && !Orchestrator.Hypervisor.Kvm.KvmDriver.IsAvailable(out var reason))
            {
                throw new Akka.Configuration.ConfigurationException($"orchestrator.host.driver = kvm, but {reason}");
            }

            if (settings.IsHost && settings.Host.Cgroups == CgroupMode.Required)
            {
                RequireCgroups(settings);
            }
        }
        catch (Exception ex) when (ex is Akka.Configuration.ConfigurationException or FileNotFoundException or FormatException)
        {
            await Console.Error.WriteLineAsync($"error: configuration: {ex.Message}");
            return 2;
        }
        var adminKey = NodeDiscoveryFiles.TryRead(options.DataDirectory)?.AdminKey ?? ApiKeys.Generate();

        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls(options.ListenUrl);
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Limits.MaxRequestBodySize = (settings.ApiLimits ?? ApiLimits.Default).MaxBodyBytes);
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(console =>
        {
            console.SingleLine = true;
            console.TimestampFormat = "HH:mm:ss.fff ";
        });
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        builder.Services.AddProblemDetails();
        builder.Services.AddOrchestratorApi();
        builder.Services.AddAkka("orchestrator", (akka, _) =>
        {
            akka.AddHocon(config, HoconAddMode.Prepend);
            akka.AddOrchestrator(settings, () => Drivers.Create(settings));
        });

        var app = builder.Build();
        var log = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("orchestrator");
        foreach (var problem in settings.Images.Problems)
        {
            log.LogWarning("{Problem}", problem);
        }

        app.UseOrchestratorProblemDetails();
        app.MapOrchestratorApi(adminKey, settings.Images, settings.Scheduler.Placement, settings.ApiLimits ?? ApiLimits.Default,
            settings.Scheduler.Limits);
        await app.StartAsync(cancellationToken);

        var url = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        await NodeDiscoveryFiles.WriteAsync(options.DataDirectory, url, Environment.ProcessId, adminKey, cancellationToken);
        log.LogInformation("node {Host} up: roles {Roles}, API {Url}, data {Data}", settings.HostId,
            string.Join(",", settings.Roles), url, options.DataDirectory);

        if (options.DemoVms > 0)
        {
            await CreateDemoVmsAsync(app.Services, config, options.DemoVms, log, cancellationToken);
        }

        // Downed by the cluster (the minority side of a partition, say): the actor system ends, and so does the process,
        // so that a supervisor (systemd) starts a fresh incarnation that joins again.
        var system = app.Services.GetRequiredService<ActorSystem>();
        var downed = false;
        _ = system.WhenTerminated.ContinueWith(_ =>
        {
            downed = !app.Lifetime.ApplicationStopping.IsCancellationRequested;
            app.Lifetime.StopApplication();
        }, TaskScheduler.Default);

        try
        {
            await app.WaitForShutdownAsync(cancellationToken);
        }
        finally
        {
            NodeDiscoveryFiles.Remove(options.DataDirectory, Environment.ProcessId);
        }

        if (downed)
        {
            log.LogWarning("the actor system stopped (this node was removed from the cluster); exiting");
        }

        return downed ? 3 : 0;
    }

    /// <summary>With cgroups = required, a host that cannot enforce shares and limits refuses to start.</summary>
    private static void RequireCgroups(OrchestratorSettings settings)
    {
        var layout = Orchestrator.Hypervisor.Cgroups.CgroupLayout.Detect();
        try
        {
            if (layout.Version == Orchestrator.Hypervisor.Cgroups.CgroupVersion.None)
            {
                throw new Orchestrator.Hypervisor.HypervisorException(layout.Problem ?? "no cgroup hierarchy found");
            }

            new Orchestrator.Hypervisor.Cgroups.VmCgroups(layout, Orchestrator.Actors.Hosts.HostAgentActor.CgroupScope(settings.HostId))
                .PrepareScope(settings.Host.Cpuset, null);
        }
        catch (Orchestrator.Hypervisor.HypervisorException ex)
        {
            throw new Akka.Configuration.ConfigurationException($"orchestrator.host.cgroups = required, but {ex.Message}");
        }
    }

    private static string FlagsAsHocon(NodeCommandOptions options)
    {
        var lines = new List<string>(options.Settings ?? []);
        if (options.Seeds is { Count: > 0 } seeds)
        {
            lines.Add($"orchestrator.cluster.seeds = [{string.Join(", ", seeds.Select(OrchestratorConfig.Quote))}]");
        }

        if (options.Bootstrap)
        {
            lines.Add("orchestrator.cluster.bootstrap = on");
        }

        return string.Join("\n", lines);
    }

    /// <summary>Where relative image paths point: $ORCHESTRATOR_IMAGE_DIR, else images/out of the checkout.</summary>
    internal static string ImageDirectory()
    {
        if (Environment.GetEnvironmentVariable("ORCHESTRATOR_IMAGE_DIR") is { Length: > 0 } configured)
        {
            return configured;
        }

        if (Bench.Checkout.FindRoot() is { } checkout)
        {
            return Path.Combine(checkout, "images", "out");
        }

        return Path.Combine(AppContext.BaseDirectory, "images");
    }

    private static async Task CreateDemoVmsAsync(IServiceProvider services, Akka.Configuration.Config config, int count,
        ILogger log, CancellationToken cancellationToken)
    {
        var scheduler = await services.GetRequiredService<IRequiredActor<SchedulerProxy>>().GetAsync(cancellationToken);
        var demo = config.GetConfig("orchestrator.demo");
        for (var i = 1; i <= count; i++)
        {
            var spec = new VmSpec($"demo-{i}", demo.GetInt("vcpus", 1), demo.GetInt("memory-mib", 256), demo.GetString("image", "demo"));
            var reply = await scheduler.Ask<object>(new LedgerCommands.CreateVm(TenantId.System, spec, VmId.New()),
                TimeSpan.FromSeconds(30), cancellationToken);
            switch (reply)
            {
                case SchedulerReplies.Accepted { Vm: { } vm }:
                    log.LogInformation("demo VM {Name} created: {Status} on {Host}", vm.Spec.Name, vm.Status, vm.Host);
                    break;
                case SchedulerReplies.Refused { Refusal.Kind: RefusalKind.Conflict }:
                    log.LogInformation("demo VM {Name} exists already", spec.Name);
                    break;
                case SchedulerReplies.Refused refused:
                    log.LogError("demo VM {Name} refused: {Reason}", spec.Name,
                        string.Join("; ", refused.Refusal.Errors.Select(e => $"{e.Field} {e.Message}")));
                    break;
            }
        }
    }
}
