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
using Orchestrator.Actors.Persistence;
using Orchestrator.Actors.Scheduler;
using Orchestrator.Actors.Settings;
using Orchestrator.Api;
using Orchestrator.Cli;
using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Vms;
using Orchestrator.Hypervisor;
using Orchestrator.Node.Commands;
using Orchestrator.Node.Demo;
using Orchestrator.Node.Logging;

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
        HostDriverChoice? driverChoice = null;
        try
        {
            config = OrchestratorConfig.Load(options.ConfigFiles, FlagsAsHocon(options));
            settings = OrchestratorSettings.Create(config, options.DataDirectory, ImageDirectory(), MachineInventory.Probe()).WithSecrets();
            settings = settings with { Images = settings.Images.LeaveOutMissing(GuestImageFiles.Missing) };
            config = OrchestratorConfig.Complete(config, options.DataDirectory, settings.Roles);
            SqliteStoreFile.Prepare(config, options.DataDirectory);
            if (settings.IsHost)
            {
                // Proved by a boot, not by /dev/kvm opening: a nested host's KVM can open and still crawl or abort.
                driverChoice = await Drivers.ChooseAsync(settings, cancellationToken);
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

        // The demo's terminal shows a short summary; the full log goes to a file in the data directory.
        var demo = options.DemoVms > 0 ? new DemoConsole(Console.Out, Console.Error) : null;
        var logging = settings.Logging ?? LoggingSettings.Default;
        if (demo is not null && logging.File is null)
        {
            logging = logging with { File = Path.Combine(options.DataDirectory, "node.log") };
        }

        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls(options.ListenUrl);
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Limits.MaxRequestBodySize = (settings.ApiLimits ?? ApiLimits.Default).MaxBodyBytes);
        builder.Logging.AddNodeLogging(logging, console: demo is null);
        builder.Services.AddProblemDetails();
        builder.Services.AddOrchestratorApi();
        builder.Services.AddOrchestratorMetrics(settings.Telemetry);
        builder.Services.AddOrchestratorTracing(settings.Telemetry, settings.HostId.Value);
        builder.Services.AddAkka("orchestrator", (akka, services) =>
        {
            akka.AddHocon(config, HoconAddMode.Prepend);
            akka.AddStoreSetup(config);
            akka.AddOrchestratorLogging(logging, services.GetRequiredService<ILoggerFactory>());
            akka.JoinOrchestratorCluster(settings.Cluster)
                .AddScheduler(settings, OrchestratorRoles.Control)
                .AddImageStore(settings)
                .AddHostAgent(settings, () => Drivers.Create(settings, driverChoice!));
        });

        var app = builder.Build();
        var log = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("orchestrator");
        foreach (var problem in settings.Images.Problems)
        {
            log.LogWarning("{Problem}", problem);
        }

        if (driverChoice is not null)
        {
            log.Log(driverChoice.Verdict.KvmFailed ? LogLevel.Warning : LogLevel.Information, "accelerator: {Choice} (probe {Milliseconds:F0} ms{Cached})",
                driverChoice.Summary, driverChoice.Verdict.ProbeMilliseconds, driverChoice.Verdict.FromCache ? ", cached" : "");
        }

        app.UseOrchestratorRequestMetrics();
        app.UseDashboard();
        app.UseOrchestratorProblemDetails();
        app.UseWebSockets(new WebSocketOptions { KeepAliveInterval = TimeSpan.FromSeconds(20) });
        app.MapOrchestratorApi(adminKey, settings.Images, settings.Scheduler.Placement, settings.ApiLimits ?? ApiLimits.Default,
            settings.Scheduler.Limits, settings.EffectiveImageImport);
        await app.StartAsync(cancellationToken);

        var url = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        await NodeDiscoveryFiles.WriteAsync(options.DataDirectory, url, Environment.ProcessId, adminKey, cancellationToken);
        log.LogInformation("node {Host} up: roles {Roles}, API {Url}, data {Data}", settings.HostId,
            string.Join(",", settings.Roles), url, options.DataDirectory);

        Task<bool>? demoRun = null;
        if (demo is not null)
        {
            demo.NodeUp(settings.HostId.Value, url, options.DataDirectory, logging.File);
            // What the probe proved, and why: a person whose KVM fell back sees it here, not only in the log.
            demo.Accelerator(driverChoice is null
                ? "this node runs no VMs (no host role)"
                : $"{driverChoice.Summary} (probe {driverChoice.Verdict.ProbeMilliseconds:F0} ms)");
            demoRun = RunDemoAsync(app, config, options, settings, logging.File, demo, log, cancellationToken);
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

        if (demoRun is { IsCompletedSuccessfully: true, Result: false })
        {
            return DemoFailedExitCode;
        }

        return downed ? 3 : 0;
    }

    /// <summary>With cgroups = required, a host that cannot enforce shares and limits refuses to start.</summary>
    private static void RequireCgroups(OrchestratorSettings settings)
    {
        try
        {
            Orchestrator.Actors.Hosts.HostCgroups.Require(settings.Host, settings.HostId);
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
    public static string ImageDirectory()
    {
        if (Environment.GetEnvironmentVariable("ORCHESTRATOR_IMAGE_DIR") is { Length: > 0 } configured)
        {
            return configured;
        }

        if (Checkout.FindRoot() is { } checkout)
        {
            return Path.Combine(checkout, "images", "out");
        }

        return Path.Combine(AppContext.BaseDirectory, "images");
    }

    /// <summary>The exit status of a demo whose VM failed or was refused.</summary>
    public const int DemoFailedExitCode = 4;

    /// <summary>
    /// Creates the demo VMs and reports each one's create → ready time; when one fails, says why and stops the node,
    /// which then exits with <see cref="DemoFailedExitCode"/>.
    /// </summary>
    private static async Task<bool> RunDemoAsync(WebApplication app, Akka.Configuration.Config config, NodeCommandOptions options,
        OrchestratorSettings settings, string? logFile, DemoConsole demo, ILogger log, CancellationToken cancellationToken)
    {
        using var stopping = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, app.Lifetime.ApplicationStopping);
        bool ready;
        try
        {
            ready = await DemoVms.RunAsync(app.Services, config, options.DemoVms, demo, log, stopping.Token);
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            return true; // stopped before the demo VMs were ready: nothing failed
        }
        catch (Exception ex) when (ex is not OperationCanceledException && !stopping.IsCancellationRequested)
        {
            // Anything else (no answer from the scheduler, the event stream failing) must not leave the demo serving silently.
            log.LogError(ex, "the demo could not create or follow its VMs");
            demo.Stopping($"the demo could not create or follow its VMs: {ex.Message}");
            app.Lifetime.StopApplication();
            return false;
        }

        if (stopping.IsCancellationRequested)
        {
            return true;
        }

        if (!ready)
        {
            demo.Stopping(logFile is null ? "a demo VM failed" : $"a demo VM failed (full log: {logFile})");
            app.Lifetime.StopApplication();
            return false;
        }

        // The client finds the node by the same rule as the node chose its data dir; elsewhere it needs --data.
        var dataFlag = DataDirectory.Resolve(null) == options.DataDirectory ? "" : $" --data {options.DataDirectory}";
        demo.NextSteps(dataFlag, settings.Host.FenceAfter);
        return true;
    }
}
