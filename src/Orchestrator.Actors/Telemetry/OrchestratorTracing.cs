// The product's one ActivitySource: the spans that follow a VM create from the API to the guest's ready banner.
using System.Diagnostics;

namespace Orchestrator.Actors.Telemetry;

/// <summary>
/// A create is traced across actors and nodes by the W3C <c>traceparent</c> string its messages carry (a
/// <c>TraceParent</c> member), never by <see cref="Activity.Current"/>: an actor's thread runs other actors' messages
/// next, so a span started here leaves the ambient activity as it found it. With no listener (no exporter configured)
/// nothing is created and every message carries null. Spans carry ids only (VM, host, tenant), never a name a tenant typed.
/// </summary>
public static class OrchestratorTracing
{
    public const string SourceName = "Orchestrator";

    public const string VmIdTag = "orchestrator.vm.id";
    public const string HostIdTag = "orchestrator.host.id";
    public const string TenantIdTag = "orchestrator.tenant.id";

    private static readonly ActivitySource Source = new(SourceName);

    /// <summary>
    /// The first span of a request (the API's): under the caller's <c>traceparent</c> header when it sent one, else a new
    /// trace. Not under the ambient activity: ASP.NET Core makes one per request whether or not anyone records it, and a
    /// parent-based sampler drops every span under an unrecorded one.
    /// </summary>
    public static Activity? StartRoot(string name, string? callerTraceParent, ActivityKind kind = ActivityKind.Server)
    {
        var parent = ActivityContext.TryParse(callerTraceParent, null, isRemote: true, out var caller) ? caller : default;
        return Detached(() =>
        {
            Activity.Current = null; // with no caller's context: a new trace, not the ambient activity's
            return Source.StartActivity(name, kind, parent);
        });
    }

    /// <summary>A span under the one <paramref name="traceParent"/> names; null when it names none (the create was not traced).</summary>
    public static Activity? StartChild(string name, string? traceParent, ActivityKind kind = ActivityKind.Internal) =>
        traceParent is not null && ActivityContext.TryParse(traceParent, null, out var parent)
            ? Detached(() => Source.StartActivity(name, kind, parent))
            : null;

    /// <summary>Ends the span, leaving the ambient activity as it was (Stop would make the span's parent ambient).</summary>
    public static void End(this Activity? activity, ActivityStatusCode status = ActivityStatusCode.Unset, string? description = null)
    {
        if (activity is null)
        {
            return;
        }

        var ambient = Activity.Current;
        activity.SetStatus(status, description);
        activity.Stop();
        Activity.Current = ambient == activity ? null : ambient;
    }

    /// <summary>What the next message carries to continue the trace under this span.</summary>
    public static string? TraceParentOf(Activity? activity) => activity?.Id;

    private static Activity? Detached(Func<Activity?> start)
    {
        var ambient = Activity.Current;
        var activity = start();
        Activity.Current = ambient;
        return activity;
    }
}
