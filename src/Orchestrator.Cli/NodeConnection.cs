// Which node the client talks to, and with which key: flags > environment > the data directory's files.
namespace Orchestrator.Cli;

/// <summary>Where a value of <see cref="NodeConnection"/> came from; error messages name it.</summary>
public enum ConnectionSource
{
    Flag,
    Environment,
    DataDirectory,
    None,
}

/// <summary>The node to call. <see cref="ToString"/> never shows the key.</summary>
public sealed record NodeConnection(
    Uri Url,
    ConnectionSource UrlSource,
    string? ApiKey,
    ConnectionSource ApiKeySource,
    string? DataDirectory,
    int? DiscoveredPid)
{
    public override string ToString() =>
        $"NodeConnection {{ Url = {Url}, UrlSource = {UrlSource}, ApiKey = {(ApiKey is null ? "null" : "***")}, " +
        $"ApiKeySource = {ApiKeySource}, DataDirectory = {DataDirectory}, DiscoveredPid = {DiscoveredPid} }}";
}

public static class NodeConnectionResolver
{
    public const string UrlEnvironmentVariable = "ORCHESTRATOR_URL";
    public const string ApiKeyEnvironmentVariable = "ORCHESTRATOR_API_KEY";

    public const string NoNodeFound =
        "no node found: start one with `./orchestrator node`, or pass --url/--api-key (or ORCHESTRATOR_URL/ORCHESTRATOR_API_KEY)";

    /// <summary>
    /// URL: <c>--url</c> &gt; <c>$ORCHESTRATOR_URL</c> &gt; <c>DATA/node.json</c>.
    /// Key: <c>--api-key</c> &gt; <c>$ORCHESTRATOR_API_KEY</c> &gt; <c>DATA/admin.key</c>; the admin key from the
    /// data directory is only sent to the node that node.json names, never to a URL given some other way.
    /// </summary>
    /// <exception cref="CliException">No URL anywhere, or a URL that is not absolute http(s).</exception>
    public static NodeConnection Resolve(string? urlFlag, string? apiKeyFlag, string? dataFlag, Func<string, string?> getEnvironmentVariable)
    {
        ArgumentNullException.ThrowIfNull(getEnvironmentVariable);

        var (urlText, urlSource) = Pick(urlFlag, getEnvironmentVariable(UrlEnvironmentVariable));
        var (key, keySource) = Pick(apiKeyFlag, getEnvironmentVariable(ApiKeyEnvironmentVariable));

        string? dataDir = null;
        NodeDiscovery? discovered = null;
        if (urlText is null || key is null)
        {
            try
            {
                dataDir = DataDirectory.Resolve(dataFlag, getEnvironmentVariable);
                discovered = NodeDiscoveryFiles.TryRead(dataDir);
            }
            catch (InvalidOperationException) when (urlText is not null)
            {
                // No home directory: fine, the URL came from elsewhere and the key simply stays unset.
            }
            catch (InvalidOperationException e)
            {
                throw new CliException($"{NoNodeFound}\n  {e.Message}");
            }
        }

        if (urlText is null)
        {
            if (discovered is null)
            {
                throw new CliException($"{NoNodeFound}\n  (no {Path.Combine(dataDir!, NodeDiscoveryFiles.NodeFileName)})");
            }

            urlText = discovered.Url;
            urlSource = ConnectionSource.DataDirectory;
        }

        var url = ParseUrl(urlText) ?? throw new CliException(urlSource switch
        {
            ConnectionSource.Flag => $"--url '{urlText}' is not an http:// or https:// URL",
            ConnectionSource.Environment => $"{UrlEnvironmentVariable} '{urlText}' is not an http:// or https:// URL",
            _ => $"{Path.Combine(dataDir!, NodeDiscoveryFiles.NodeFileName)} has a bad url '{urlText}'",
        });

        var sameNodeAsFiles = discovered is not null && ParseUrl(discovered.Url) is { } fileUrl && SameEndpoint(fileUrl, url);
        if (key is null && sameNodeAsFiles && discovered!.AdminKey is not null)
        {
            key = discovered.AdminKey;
            keySource = ConnectionSource.DataDirectory;
        }

        return new NodeConnection(url, urlSource, key, keySource, dataDir, sameNodeAsFiles ? discovered!.Pid : null);
    }

    /// <summary>An absolute http(s) URL with a trailing slash, so relative API paths keep any path prefix.</summary>
    public static Uri? ParseUrl(string? text)
    {
        if (string.IsNullOrWhiteSpace(text)
            || !Uri.TryCreate(text.Trim(), UriKind.Absolute, out var uri)
            || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps)
            || !string.IsNullOrEmpty(uri.Query)
            || !string.IsNullOrEmpty(uri.Fragment))
        {
            return null;
        }

        return uri.AbsolutePath.EndsWith('/') ? uri : new Uri(uri.GetLeftPart(UriPartial.Path) + "/");
    }

    private static bool SameEndpoint(Uri a, Uri b) =>
        Uri.Compare(a, b, UriComponents.SchemeAndServer | UriComponents.Path, UriFormat.Unescaped, StringComparison.OrdinalIgnoreCase) == 0;

    private static (string? Value, ConnectionSource Source) Pick(string? flag, string? env) =>
        !string.IsNullOrWhiteSpace(flag) ? (flag.Trim(), ConnectionSource.Flag)
        : !string.IsNullOrWhiteSpace(env) ? (env.Trim(), ConnectionSource.Environment)
        : (null, ConnectionSource.None);
}
